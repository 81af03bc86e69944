; Double Cheese Burger, Robotouille's unrandomised layout: top bun on bottom bun, cheese on
; cheese, patty on patty, one empty table, the robot at the buns. The goal is the strict chain
; bottom bun, patty, cheese, patty, cheese, top bun; the upper patty and cheese of each
; starting stack go lower, as Robotouille's best binding does. Optimal length 23.
(define (problem double_cheese_burger)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 table4 - table
    bottombun1 - bottombun
    topbun1 - topbun
    cheese1 cheese2 - cheese
    patty1 patty2 - patty)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3) (vacant table4)
    (on-station bottombun1 table1) (in bottombun1 table1)
    (on topbun1 bottombun1) (in topbun1 table1) (clear topbun1)
    (on-station cheese1 table2) (in cheese1 table2)
    (on cheese2 cheese1) (in cheese2 table2) (clear cheese2)
    (on-station patty1 table3) (in patty1 table3)
    (on patty2 patty1) (in patty2 table3) (clear patty2)
    (cookable patty1) (cooked patty1) (cookable patty2) (cooked patty2)
    (empty table4))
  (:goal (and
    (on-station bottombun1 table1)
    (on patty2 bottombun1)
    (on cheese2 patty2)
    (on patty1 cheese2)
    (on cheese1 patty1)
    (on topbun1 cheese1)
    (cooked patty1) (cooked patty2))))
