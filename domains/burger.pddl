; Burger, Robotouille's unrandomised layout: bottom bun, top bun and a cooked patty on three
; tables, the robot at the bottom bun. Optimal length 8.
(define (problem burger)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 - table
    bottombun1 - bottombun
    topbun1 - topbun
    patty1 - patty)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3)
    (on-station bottombun1 table1) (in bottombun1 table1) (clear bottombun1)
    (on-station topbun1 table2) (in topbun1 table2) (clear topbun1)
    (on-station patty1 table3) (in patty1 table3) (clear patty1)
    (cookable patty1) (cooked patty1))
  (:goal (and
    (on-station bottombun1 table1)
    (on patty1 bottombun1)
    (cooked patty1)
    (on topbun1 patty1))))
