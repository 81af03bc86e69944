; Cheese Burger, Robotouille's unrandomised layout: the top bun stacked on the bottom bun,
; cheese and a cooked patty on two more tables, one empty table, the robot at the buns.
; Robotouille accepts patty and cheese in either order; both orders take 15 steps, and this
; problem binds the patty below the cheese. Optimal length 15.
(define (problem cheese_burger)
  (:domain cooking)
  (:objects
    robot1 - robot
    table1 table2 table3 table4 - table
    bottombun1 - bottombun
    topbun1 - topbun
    cheese1 - cheese
    patty1 - patty)
  (:init
    (at robot1 table1) (hand-empty robot1)
    (vacant table2) (vacant table3) (vacant table4)
    (on-station bottombun1 table1) (in bottombun1 table1)
    (on topbun1 bottombun1) (in topbun1 table1) (clear topbun1)
    (on-station cheese1 table2) (in cheese1 table2) (clear cheese1)
    (on-station patty1 table3) (in patty1 table3) (clear patty1)
    (cookable patty1) (cooked patty1)
    (empty table4))
  (:goal (and
    (on-station bottombun1 table1)
    (on patty1 bottombun1)
    (cooked patty1)
    (on cheese1 patty1)
    (on topbun1 cheese1)
    (clear topbun1))))
