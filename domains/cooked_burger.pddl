; Burger with a raw patty: the patty must be cooked on the stove before it goes on the bun.
(define (problem cooked_burger)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 - table
    stove1 - stove
    bottombun1 - bottombun
    topbun1 - topbun
    patty1 - patty)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3) (vacant stove1)
    (on-station bottombun1 table1) (in bottombun1 table1) (clear bottombun1)
    (on-station topbun1 table2) (in topbun1 table2) (clear topbun1)
    (on-station patty1 table3) (in patty1 table3) (clear patty1)
    (cookable patty1)
    (empty stove1))
  (:goal (and
    (on-station bottombun1 table1)
    (on patty1 bottombun1)
    (cooked patty1)
    (on topbun1 patty1))))
